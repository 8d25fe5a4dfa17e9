"""wharf: Cloud Foundry-style image apps (`cf push --docker-image`) on Kubernetes.

Layers import only downward (enforced by `.importlinter`):
    main -> handlers -> kube | registry -> render | status -> api -> config
"""

__version__ = "0.1.0"

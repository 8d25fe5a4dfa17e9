"""Test-only harness: a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok),
real Registry V2 servers (Debian's docker-registry) with their real auth, test images pushed with skopeo, and a
small pod-status agent whose image pulls follow the real registry; also an image's own filesystem run with umoci +
runc (image_run). Nothing here ships in the operator."""

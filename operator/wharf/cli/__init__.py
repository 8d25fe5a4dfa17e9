"""`wharf push`, `wharf apps`, ...: the command line for CF users. A client of the apiserver, like kubectl: it writes
App resources and reads what the operator reports. Not on kopf's event loop: its Kubernetes calls are synchronous."""

"""wharf.kube"""

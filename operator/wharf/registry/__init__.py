"""wharf.registry"""

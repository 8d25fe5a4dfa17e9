"""wharf.status"""

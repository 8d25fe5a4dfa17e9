"""wharf.render"""

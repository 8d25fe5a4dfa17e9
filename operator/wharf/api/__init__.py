"""The API model: the App resource's spec and status, CF units, and image facts. Imports nothing of wharf's
but `wharf.config`."""

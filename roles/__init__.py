"""Provisioning roles: plain functions on a Fabric Connection that read the host's state
and act only where it differs from what is wanted."""

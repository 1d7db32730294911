"""`sora-extend`, the command line: the entry layer above the domain package, the flows and the deployments."""

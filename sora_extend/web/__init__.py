"""Read-only HTTP access to job storage for a browser (media server)."""

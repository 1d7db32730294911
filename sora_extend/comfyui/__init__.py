"""ComfyUI: workflow templates with placeholders, the HTTP client of one server, several servers as one
render farm, and the checks that refuse a run before anything is queued."""

"""The library: every job in a storage, listed from a small index beside the job folders (never by opening
each folder), searched, filtered and summed up for `sora-extend serve`'s front page."""

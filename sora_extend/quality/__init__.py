"""The quality gate: judging every rendered piece from its pixels (and optionally a chat model with image
input), and keeping the best take of a flawed one. Prefect-free, like the rest of `sora_extend`."""

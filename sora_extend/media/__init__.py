"""Media: probing, exact frame decode, writing, merging and image analysis.

Hot paths (frame decode, stream-copy merge) use PyAV; OpenCV does image analysis and resizing;
moviepy does compositing where a full re-encode is unavoidable.
"""

"""The async FastAPI serving API: recommendations, similar items, FBT, events, A/B, hot swap."""

"""The recommender package; content features for the track embedder come first."""

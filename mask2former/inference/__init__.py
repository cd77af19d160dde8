"""Post-processing (pure functions), the Predictor, and writers for people and for tools."""

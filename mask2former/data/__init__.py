"""Reading images and datasets, and transforming them jointly with their targets."""

"""External event generators run by lipsgen to make training data (optional installs)."""

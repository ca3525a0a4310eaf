"""Lightning modules and the networks only training needs (discriminators)."""

"""Request and response models (Create / Update / Public per resource)."""

"""The lab: plant facts into real Wikipedia text, train a small MLM, check the labels."""

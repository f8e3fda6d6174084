"""Small widgets that mirror models; each in its own module."""

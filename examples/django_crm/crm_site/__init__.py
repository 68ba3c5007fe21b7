"""Project settings and URLs of the example CRM."""

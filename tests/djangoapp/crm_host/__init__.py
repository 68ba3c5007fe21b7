"""A tiny host CRM (people, companies, opportunities) the Django tests map."""

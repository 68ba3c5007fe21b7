"""A minimal CRM (people, companies, opportunities) that shows commlink's Django app."""

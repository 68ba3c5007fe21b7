#!/usr/bin/env python
"""The example CRM's command line (``python examples/django_crm/manage.py runserver``)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

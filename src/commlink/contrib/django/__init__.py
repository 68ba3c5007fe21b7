"""commlink as a Django app: the ``Store`` port on the Django ORM, a
``Directory`` over the host's own models, management commands, signals and
the connect and push views.

Add ``"commlink.contrib.django"`` to ``INSTALLED_APPS`` (``pip install
commlink[django]``).
"""

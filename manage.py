#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A settings error (a malformed DATABASE_URL, say) would otherwise end as a long
        # traceback from the settings import. Caught here, not by reading the settings
        # first, so that Django still applies --settings and --pythonpath before it loads
        # them.
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()

import sys

from podium_app.cli import main

sys.exit(main())

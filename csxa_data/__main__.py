import sys

from csxa_data.cli import main

sys.exit(main())

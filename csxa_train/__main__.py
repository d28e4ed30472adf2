import sys

from csxa_train.cli import main

sys.exit(main())

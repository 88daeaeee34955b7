# layer:status reactive part: initialize at import (during discover), registering atexit(_finalize).
from charms.layer import status

status._initialize()

"""The defaults of `goz download`, each written once.

The API (`goz.download.download`, `report`), the CLI (`goz.commands.download`) and the option
records (`FetchOptions`, `ValidationLimits`, `ShardJob`, `plan_job`) all read them from here.
"""

from __future__ import annotations

ENGINE = "local"
PROCESSES = 1                # local engine: processes running shards
SHARD_SIZE = 10_000          # list entries per shard when the shard count is not given
CONCURRENCY = 256            # requests in flight per shard
PER_HOST = 16                # requests in flight per host
DEADLINE_S = 30.0            # seconds for a whole attempt (connect, redirects, body)
MAX_BYTES = 20 * 2**20       # largest body accepted
MAX_REDIRECTS = 5
MAX_ATTEMPTS = 3             # attempts of a URL answered 429/503
MIN_SIDE = 32                # smallest accepted image side, pixels
MAX_PIXELS = 50_000_000      # decompression-bomb limit
PLACEHOLDER_URLS = 5         # content shared by this many distinct URLs is a placeholder
FORMAT = "files"             # or "webdataset"
IMAGES_PER_TAR = 1000        # webdataset: samples per tar
REPORT_TARGET = 100          # `goz download-report`: images wanted per class

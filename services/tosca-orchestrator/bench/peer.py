# Runs OpenStack tosca-parser on each template given; one JSON line per template:
# {"file", "valid", "seconds", "first_seconds", "error"}. Only the parse+validate call is timed.
# With PEER_REPEATS=N (default 1) each template is parsed N times in this process and "seconds"
# is the median (the first run is in "first_seconds"), as Lapis is measured warm.
import json, logging, os, statistics, sys, time

logging.disable(logging.CRITICAL)
from toscaparser.tosca_template import ToscaTemplate  # noqa: E402

repeats = max(1, int(os.environ.get("PEER_REPEATS", "1")))

for path in sys.argv[1:]:
    times = []
    valid, error = True, None
    for _ in range(repeats):
        started = time.perf_counter()
        valid, error = True, None
        try:
            ToscaTemplate(path)
        except Exception as exc:  # tosca-parser raises ValidationError (or others) on invalid templates
            valid, error = False, (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        times.append(time.perf_counter() - started)
    print(json.dumps({"file": path, "valid": valid, "seconds": statistics.median(times), "first_seconds": times[0], "error": error}), flush=True)

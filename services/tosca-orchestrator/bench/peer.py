# Runs OpenStack tosca-parser on each template given; one JSON line per template:
# {"file", "valid", "seconds", "error"}. Only the parse+validate call is timed.
import json, logging, sys, time

logging.disable(logging.CRITICAL)
from toscaparser.tosca_template import ToscaTemplate  # noqa: E402

for path in sys.argv[1:]:
    started = time.perf_counter()
    valid, error = True, None
    try:
        ToscaTemplate(path)
    except Exception as exc:  # tosca-parser raises ValidationError (or others) on invalid templates
        valid, error = False, (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    seconds = time.perf_counter() - started
    print(json.dumps({"file": path, "valid": valid, "seconds": seconds, "error": error}), flush=True)

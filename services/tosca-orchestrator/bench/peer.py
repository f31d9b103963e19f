# OpenStack tosca-parser as the benchmark's peer: reads template paths from stdin, one a line,
# parses and validates each (ToscaTemplate) and answers one JSON line per path:
# {"file", "valid", "seconds", "error", "crashed"}; crashed: it failed with something other than
# a TOSCA error (its own bug, not a verdict). Only the ToscaTemplate call is timed. One process
# for the whole run, so the bench can alternate it with Lapis (both meet the same neighbours).
import json, logging, sys, time

logging.disable(logging.CRITICAL)
from toscaparser.common.exception import TOSCAException  # noqa: E402
from toscaparser.tosca_template import ToscaTemplate  # noqa: E402

for line in sys.stdin:
    path = line.strip()
    if not path:
        continue
    valid, error, crashed = True, None, False
    started = time.perf_counter()
    try:
        ToscaTemplate(path)
    except Exception as exc:  # tosca-parser raises ValidationError (or others) on invalid templates
        # The first line that says something (a collected ValidationError starts with a blank line).
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        said = next((line for line in lines if "Error:" in line), lines[0] if lines else type(exc).__name__)
        valid, error, crashed = False, said[:300], not isinstance(exc, TOSCAException)
    seconds = time.perf_counter() - started
    print(json.dumps({"file": path, "valid": valid, "seconds": seconds, "error": error, "crashed": crashed}), flush=True)

"""The functions' observability, in one place: one powertools Logger and Metrics, configured by
the environment the template sets (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL,
POWERTOOLS_METRICS_NAMESPACE).

sipreg's own modules log through the standard library (`logging.getLogger(__name__)`), so they
stay free of Lambda concerns; in a function their lines come out as the same JSON as `logger`'s.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

logger = Logger()
# The template sets the namespace; the same default serves a local run.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sipreg")

if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # in a function, not when a test imports a handler
    # Configured on the "sipreg" logger itself: every sipreg.* module's logger propagates to it,
    # including modules imported after this one.
    logging.getLogger("sipreg")
    copy_config_to_registered_loggers(source_logger=logger, include={"sipreg"})

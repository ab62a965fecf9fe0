"""Names and numbers that more than one folder uses, defined once.

Every folder may import :mod:`bus`, so constants shared by the pipeline, the
HTTP face, the command line and the deploy plan live here.
"""

from __future__ import annotations

#: The Cloud Functions (``main.py`` targets), in the order ``serve`` lists them.
FUNCTION_TARGETS: tuple[str, ...] = ("orchestrator", "strategy", "reconcile", "allocation", "api")
#: The functions the workflow calls, one per pipeline step.
STEP_FUNCTIONS: tuple[str, ...] = ("strategy", "reconcile", "allocation")

#: Environment variable: folder of the YAML configuration the functions read (``serve --config``).
CONFIG_DIR_ENV = "INTENT_BUS_CONFIG_DIR"
#: Environment variable: bearer token the local functions require when set.
TOKEN_ENV = "INTENT_BUS_TOKEN"
#: The operator role of the read API's one write (``POST /api/strategies/{id}/state``): header ``X-Operator-Token``.
OPERATOR_TOKEN_ENV = "INTENT_BUS_OPERATOR_TOKEN"
#: Environment variable: ``inline`` (POST /orchestrator runs the steps) or ``workflow`` (it starts the workflow).
ORCHESTRATOR_MODE_ENV = "INTENT_BUS_ORCHESTRATOR"
#: Environment variable: ``projects/{p}/locations/{region}/workflows/{name}`` of the deployed workflow.
WORKFLOW_ENV = "INTENT_BUS_WORKFLOW"
#: Environment variable: the deployed functions' base URL.
FUNCTIONS_URL_ENV = "INTENT_BUS_FUNCTIONS_URL"
#: Environment variable (tests only): a plaintext gRPC ``host:port`` for the Workflow Executions API.
WORKFLOWS_ENDPOINT_ENV = "INTENT_BUS_WORKFLOWS_ENDPOINT"

#: Seconds a Commander lease (``locks/commander-{mode}``) lives before another run may take it.
LEASE_TTL_SECONDS = 600.0

# Tolerances, named for what they compare.
#: Units (shares, contracts, coins) below which a quantity counts as zero.
QTY_EPS = 1e-9
#: Base-currency amounts below which a difference counts as zero.
MONEY_EPS = 1e-6
#: Relative tolerance of floating-point identities (sums of fractions, ratios).
REL_EPS = 1e-12
#: Absolute float noise: a quantity (units) or an amount (base currency) smaller than this is zero, and a
#: difference smaller than this is no change. Far below :data:`QTY_EPS`: used where any real residue counts.
NOISE_EPS = 1e-12
#: Slack of a computed value over the limit it is checked against (base currency, a fraction of capital,
#: a leverage multiple), so that float rounding alone never trips a cap.
LIMIT_EPS = 1e-9
#: Backtest check "books add up": units by which the strategy books summed may differ from the account's.
CHECK_UNITS_EPS = 1e-6
#: Backtest check "NAV identity": base currency (half a cent) by which NAV may differ from
#: starting cash + realized + unrealized − fees − funding.
CHECK_NAV_EPS = 0.005

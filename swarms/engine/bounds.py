"""The largest definition the engine accepts: agents, replicas, steps, rounds, tokens and text.

Apart from the schema that enforces them because the topologies rely on them too (a manager's
plan is read up to as many subtasks as a team can have agents).
"""

MAX_TOKENS = 32768
MAX_PARALLEL = 64
MAX_STEPS = 500
MAX_ROUNDS = 20
MAX_REPLICAS = 16
MAX_AGENT_ENTRIES = 32
MAX_AGENTS_EXPANDED = 64
MAX_INSTRUCTIONS_CHARS = 20_000
MAX_MODEL_CHARS = 200
MAX_TOOL_CALLS = 20  # per agent turn
MAX_AGENT_TOOLS = 16
MAX_TOOL_NAME_CHARS = 64

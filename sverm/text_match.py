"""Case-insensitive text lookups (`iexact`, `icontains`, `istartswith`, `iendswith`) that fold
Unicode on SQLite as they do on PostgreSQL.

PostgreSQL compares `UPPER(column)` with `UPPER(value)`, and its UPPER maps every character
(`é` to `É`, Greek and Cyrillic too); SQLite's LIKE, which Django uses for these lookups
there, folds only ASCII. So on SQLite both sides go through `sverm_upper`, a Python function
registered on every connection that maps each character as PostgreSQL's UPPER does: to its
single-character uppercase, a character whose uppercase is longer (`ß` -> `SS`) staying as it
is.
"""

from django.db.models import CharField, TextField
from django.db.models.lookups import IContains, IEndsWith, IExact, IStartsWith

SQLITE_UPPER = "sverm_upper"


def unicode_upper(value):
    """Each character's single-character uppercase (PostgreSQL's UPPER); non-text as it is."""
    if not isinstance(value, str):
        return value
    if value.isascii():
        return value.upper()
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in value)


def sqlite_functions_install(sender, connection, **kwargs) -> None:
    """connection_created: `sverm_upper` on every new SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_UPPER, 1, unicode_upper, deterministic=True)


class UnicodeFolding:
    """On SQLite, `sverm_upper(lhs) LIKE sverm_upper(rhs)` (Django's own SQL elsewhere)."""

    def as_sqlite(self, compiler, connection):
        lhs_sql, params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        params.extend(rhs_params)
        rhs_sql = self.get_rhs_op(connection, f"{SQLITE_UPPER}({rhs_sql})")
        return f"{SQLITE_UPPER}({lhs_sql}) {rhs_sql}", params


class UnicodeIExact(UnicodeFolding, IExact):
    pass


class UnicodeIContains(UnicodeFolding, IContains):
    pass


class UnicodeIStartsWith(UnicodeFolding, IStartsWith):
    pass


class UnicodeIEndsWith(UnicodeFolding, IEndsWith):
    pass


def lookups_register() -> None:
    """Replaces the four lookups on every text field (CharField's kinds included)."""
    for field in (CharField, TextField):
        for lookup in (UnicodeIExact, UnicodeIContains, UnicodeIStartsWith, UnicodeIEndsWith):
            field.register_lookup(lookup)

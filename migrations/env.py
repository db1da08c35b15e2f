"""Alembic environment: migrates the connection `daam_store.store.migrate` passes in, or else the
database named by sqlalchemy.url in alembic.ini, $DAAM_STORE_URL, or the default SQLite file."""

from logging.config import fileConfig

from alembic import context

from daam_store.store.schema import Base
from daam_store.store.session import make_engine, parse_database_url

config = context.config
if config.config_file_name is not None:  # run by the `alembic` command: log as alembic.ini says
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def configure(**kwargs) -> None:
    context.configure(
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite alters tables by copying them; harmless elsewhere
        **kwargs,
    )


def run_offline() -> None:
    configure(url=parse_database_url(config.get_main_option("sqlalchemy.url")), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as own_connection:
        configure(connection=own_connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

"""invoke entry point. Thin: the tasks live in toolkit/tasks_*.py, the logic in toolkit/ and roles/.

`invoke --list` shows every task; `invoke --help TASK` shows one task's options.
"""

from invoke import Collection

from toolkit import tasks_db

from toolkit import tasks_app, tasks_deploy, tasks_env, tasks_hosts, tasks_maintenance, tasks_sandbox, tasks_tls

ns = Collection.from_module(tasks_deploy)
ns.add_collection(Collection.from_module(tasks_sandbox), name="sandbox")
ns.add_collection(Collection.from_module(tasks_hosts), name="hosts")
ns.add_collection(Collection.from_module(tasks_db), name="db")
for app_task in (tasks_app.run_command, tasks_app.manage, tasks_app.shell):
    ns.add_task(app_task)
ns.add_collection(tasks_env.ns)
ns.add_collection(tasks_tls.ns)
ns.add_collection(tasks_maintenance.ns)

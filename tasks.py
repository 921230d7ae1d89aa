"""invoke entry point. Thin: the tasks live in toolkit/tasks_*.py, the logic in toolkit/ and roles/.

`invoke --list` shows every task; `invoke --help TASK` shows one task's options.
"""

from invoke import Collection

from toolkit import tasks_deploy, tasks_hosts, tasks_sandbox

ns = Collection.from_module(tasks_deploy)
ns.add_collection(Collection.from_module(tasks_sandbox), name="sandbox")
ns.add_collection(Collection.from_module(tasks_hosts), name="hosts")

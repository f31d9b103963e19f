# Shared by the start and stop scripts: where a server's process id is kept.
pid_file() { echo "/run/lapis-$1.pid"; }

"""What lab tests share about the app hosts: the app's command line as the operator runs it."""

APP_CLI = ("sudo -u podium-app env PODIUM_ENV_FILE=/etc/podium/app.env "
           "/opt/podium/app/current/venv/bin/podium-app")

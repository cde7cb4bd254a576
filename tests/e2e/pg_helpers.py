"""A private PostgreSQL cluster for black-box tests, driven through scripts/pg (the
same script `make run-scale` and the scale-out mode use): a fresh directory under
/tmp, a free port on 127.0.0.1, one database and role per service, destroyed by
the test that made it."""
import os
import shutil
import subprocess
import tempfile

from conftest import REPO

PG = os.path.join(REPO, "scripts", "pg")


class PgCluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="souk-e2e-pg-", dir="/tmp")
        self.port = None

    def cmd(self, command, *args):
        r = subprocess.run([PG, command, self.dir, *args], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"scripts/pg {command} failed: {r.stderr}{r.stdout}"
        return r.stdout.strip()

    def start(self):
        self.port = int(self.cmd("start"))
        return self

    def stop(self):
        self.cmd("stop")

    def restart(self):
        """pg_ctl restart -m fast: every session is closed, the server comes back."""
        self.cmd("restart")

    def destroy(self):
        subprocess.run([PG, "destroy", self.dir], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    def createdb(self, name):
        """Database and role name; returns the URL without its password."""
        return self.cmd("createdb", name)

    def url(self, name, with_password=False):
        return self.cmd("url", name, *(["--with-password"] if with_password else []))

    def password_file(self, name):
        return self.cmd("password-file", name)

    def env(self, name):
        """A service's SOUK_DB for its own database, the password in a file."""
        return {"SOUK_DB": self.createdb(name), "SOUK_DB_PASSWORD_FILE": self.password_file(name)}

    def psql(self, db, sql, user=None):
        """Run sql in db as the superuser (over the socket) or as user (over TCP with
        its password); returns (exit status, output)."""
        if user is None:
            args = [PG, "psql", self.dir, "--", "-X", "-At", "-d", db, "-c", sql]
        else:
            url = self.url(user, with_password=True).rsplit("/", 1)[0] + "/" + db
            args = ["psql", "-X", "-At", url, "-c", sql]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return r.returncode, (r.stdout + r.stderr).strip()

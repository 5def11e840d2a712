#!/usr/bin/env python3
"""The web console in a real browser: starts shoald (a temp SQLite store, a known admin
password, a free port), drives headless Chromium through Selenium, and checks what a lab
technician would: a wrong password is refused with a message, login works, a host can be
registered (a bad MAC is refused next to the MAC field), an image assigned, a task started,
and the task's progress, posted by "the PC" through the client-OS endpoint with the task's
key, shows up in the page's progress bar. Saves a screenshot (a test artifact, path
printed) and checks it is a real PNG.

Exits 77 (skip) when Chromium, its driver or Selenium is missing; CI has all three.

    console_test.py --shoald build-test/control/shoald --web control/web --artifacts build-test/artifacts
    console_test.py --url http://127.0.0.1:8080 --password secret   # a shoald already running
"""
import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver') or '/usr/lib/chromium/chromedriver'

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    # A python3 from pyenv or a venv first on PATH does not see Debian's python3-selenium.
    if sys.executable != '/usr/bin/python3' and os.path.exists('/usr/bin/python3') \
            and not os.environ.get('SHOAL_CONSOLE_REEXEC'):
        os.environ['SHOAL_CONSOLE_REEXEC'] = '1'
        os.execv('/usr/bin/python3', ['/usr/bin/python3', *sys.argv])
    print('skip: python3-selenium is not installed (tools/setup installs it)')
    sys.exit(SKIP)

WAIT_S = 30          # the longest any one thing in the page may take (CI shares its cores)
START_WAIT_S = 60    # shoald's start, the store's migrations and the first admin's Argon2id hash included
MAC_TYPED = '52:54:00:AB:CD:EF'  # FOG's upper-case form, as a technician types it
MAC_SHOWN = '52:54:00:ab:cd:ef'  # normalized, as the store keeps and shows it
HOST = 'pc-204-01'
IMAGE = 'win11-lab'


def fail(msg):
    raise AssertionError(msg)


# ---- shoald and its API, from outside the browser ---------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def http(base, method, path, body=None, headers=None, timeout_s=5):
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault('Content-Type', 'application/json')
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.read().decode(errors='replace')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors='replace')


class shoald_process:
    """A real shoald on a free port with a fresh SQLite store; stopped and logged on exit."""

    def __init__(self, binary, web_dir, workdir, password):
        self.port = free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        self.log_path = os.path.join(workdir, 'shoald.log')
        self.log = open(self.log_path, 'w')
        # shoald's own config file (control/shoald_config.h): a fresh SQLite store, the
        # first admin with a known password, HTTP on loopback only, and no DHCP or TFTP
        # (this test needs neither, and port 69 may be another test's).
        self.store_path = os.path.join(workdir, 'shoald.db')
        for d in ('images', 'clientos'):
            os.makedirs(os.path.join(workdir, d), exist_ok=True)
        config = {
            'store': 'sqlite://' + self.store_path,
            'images': os.path.join(workdir, 'images'),
            'clientos': os.path.join(workdir, 'clientos'),
            'web': web_dir,
            'admin': {'user': 'admin', 'password': password,
                      'password_file': os.path.join(workdir, 'admin-password')},
            'boot': {'dhcp': {'enabled': False}, 'tftp': {'enabled': False},
                     'http': {'address': '127.0.0.1', 'port': self.port}},
        }
        config_path = os.path.join(workdir, 'shoald.json')
        with open(config_path, 'w') as f:
            json.dump(config, f, indent=2)
        cmd = [binary, '--config', config_path]
        print('starting:', ' '.join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=workdir)
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f'shoald exited with {self.proc.returncode}:\n{self.tail()}')
            # Ready when the first admin can log in: the store is open and migrated.
            try:
                status, _ = http(self.base, 'POST', '/api/v1/login',
                                 {'user': 'admin', 'password': password}, timeout_s=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f'shoald did not take a login within {START_WAIT_S} s:\n{self.tail()}')

    def tail(self):
        self.log.flush()
        with open(self.log_path, errors='replace') as f:
            return ''.join(f.readlines()[-40:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def task_key(base, token, mac, host_id, task_id, store_path):
    """The task's secret as the PC learns it: from its iPXE script's kernel command line."""
    status, script = http(base, 'GET', f'/boot?mac={mac}')
    if status != 200:
        fail(f'GET /boot?mac={mac}: {status} {script[:300]}')
    m = re.search(r'shoal\.key=([0-9a-fA-F]+)', script)
    t = re.search(r'shoal\.task=(\d+)', script)
    if not (m and t):
        fail(f'the boot script for {mac} carries no shoal.task/shoal.key for task {task_id}:\n{script[:800]}')
    if int(t.group(1)) != task_id:
        fail(f'the boot script names task {t.group(1)}, the console shows task {task_id}')
    print(f'task key from the boot script for {mac}')
    return m.group(1)


def post_progress(base, key, **progress):
    status, body = http(base, 'POST', '/client/progress', progress,
                        headers={'X-Shoal-Task-Key': key})
    if status // 100 != 2:
        fail(f'POST /client/progress: {status} {body[:300]}')


# ---- the browser -------------------------------------------------------------------------

def browser(workdir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
              '--window-size=1400,1000', f'--user-data-dir={os.path.join(workdir, "chromium")}',
              '--no-first-run', '--disable-extensions', '--lang=en-US'):
        opts.add_argument(a)
    service = Service(DRIVER, log_path=os.path.join(workdir, 'chromedriver.log'))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(WAIT_S)
    return d


def wait(d, what, cond):
    try:
        return WebDriverWait(d, WAIT_S, poll_frequency=0.1).until(cond)
    except Exception as e:
        errors = [x['message'] for x in d.get_log('browser')] if hasattr(d, 'get_log') else []
        fail(f'waited {WAIT_S} s for {what}: {type(e).__name__}; browser log: {errors[-5:]}')


def visible(d, css):
    return wait(d, css, ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def text_in(d, css, text):
    return wait(d, f'{text!r} in {css}', ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def fill(d, css, value):
    el = visible(d, css)
    el.clear()
    el.send_keys(value)
    return el


def login(d, user, password):
    fill(d, '#login-user', user)
    fill(d, '#login-password', password)
    d.find_element(By.CSS_SELECTOR, '#login-submit').click()


def check_png(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        fail(f'{path} is not a PNG')
    if data[12:16] != b'IHDR':
        fail(f'{path}: no IHDR chunk first')
    width, height = struct.unpack('>II', data[16:24])
    if width < 800 or height < 600 or len(data) < 20_000:
        fail(f'{path}: {width}x{height}, {len(data)} bytes: too small to show the console')
    return width, height, len(data)


def run(d, base, user, password, artifacts, store_path, workdir):
    status, page = http(base, 'GET', '/ui/')
    if status != 200 or 'login-form' not in page:
        fail(f'GET /ui/ is not the console: {status} {page[:200]}')
    d.get(base + '/ui/')

    # A wrong password: refused, with a message under the form, and no console.
    login(d, user, password + '-wrong')
    err = visible(d, '#login-error')
    if not err.text.strip():
        fail('a wrong password showed no error')
    if d.find_element(By.ID, 'top').is_displayed():
        fail('a wrong password opened the console')
    print(f'wrong password: "{err.text}"')

    login(d, user, password)
    visible(d, '#hosts-body')
    token = d.execute_script("return sessionStorage.getItem('shoal.token')")
    if not token:
        fail('no token kept in sessionStorage after login')

    # An image to deploy, added through the images page.
    d.get(base + '/ui/#/images')
    fill(d, '#image-form input[name=name]', IMAGE)
    d.find_element(By.CSS_SELECTOR, '#image-form button[type=submit]').click()
    text_in(d, '#view table tbody', IMAGE)

    # FOG's CSV with one bad line: every bad line listed by number, nothing imported.
    d.get(base + '/ui/#/hosts')
    csv_path = os.path.join(workdir, 'fog-hosts.csv')
    with open(csv_path, 'w') as f:
        f.write('"00:12:3F:C4:57:0C","lab-a1","","room 204","",""\n'
                '"00:12:3F:C4:57","lab-a2","","room 204","",""\n')
    visible(d, '#csv-file').send_keys(csv_path)
    d.find_element(By.CSS_SELECTOR, '#csv-form button[type=submit]').click()
    text_in(d, '#csv-errors', 'line 2')
    csv_errors = d.find_element(By.ID, 'csv-errors').text
    if 'line 1' in csv_errors:
        fail(f'the good line 1 is reported as bad: {csv_errors!r}')
    status, body = http(base, 'GET', '/api/v1/hosts', headers={'Authorization': f'Bearer {token}'})
    if status != 200 or json.loads(body).get('items'):
        fail(f'a CSV with a bad line imported something: {status} {body[:300]}')
    print(f'CSV with a bad line: {csv_errors!r}')

    # Register a host: first with a bad MAC, whose error must sit next to the MAC field.
    fill(d, '#host-mac', '52:54:00:AB:CD')
    fill(d, '#host-name', HOST)
    d.find_element(By.ID, 'host-submit').click()
    mac_err = wait(d, 'an error next to the MAC field', lambda d: (
        lambda el: el if el.text.strip() else None)(
        d.find_element(By.CSS_SELECTOR, '#host-form [data-field=mac] .error')))
    print(f'bad MAC: "{mac_err.text}"')
    fill(d, '#host-mac', MAC_TYPED)
    d.find_element(By.ID, 'host-submit').click()
    row_css = '#hosts-body tr[data-id]'
    text_in(d, '#hosts-body', MAC_SHOWN)
    row = d.find_element(By.CSS_SELECTOR, row_css)
    if HOST not in row.text:
        fail(f'the host row shows {row.text!r}, not {HOST}')
    host_id = int(row.get_attribute('data-id'))

    # Assign the image from the host's row; the store must have it (read back over the API).
    Select(row.find_element(By.CSS_SELECTOR, 'select[name=image_id]')).select_by_visible_text(IMAGE)
    auth = {'Authorization': f'Bearer {token}'}
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = http(base, 'GET', f'/api/v1/hosts/{host_id}', headers=auth)
        if status == 200 and json.loads(body).get('image_id'):
            break
        if time.monotonic() > deadline:
            fail(f'assigning the image did not reach the store: {status} {body[:300]}')
        time.sleep(0.1)

    # Start a deploy task for the host from the tasks page.
    d.get(base + '/ui/#/tasks')
    visible(d, '#task-form')
    wait(d, 'the host in the task form', lambda d: d.find_elements(
        By.CSS_SELECTOR, f'#task-target option[value="host:{host_id}"]'))
    Select(d.find_element(By.ID, 'task-kind')).select_by_value('deploy')
    Select(d.find_element(By.ID, 'task-target')).select_by_value(f'host:{host_id}')
    d.find_element(By.ID, 'task-submit').click()
    text_in(d, '#tasks-body', HOST)
    task_row = d.find_element(By.CSS_SELECTOR, '#tasks-body tr[data-id]')
    task_id = int(task_row.get_attribute('data-id'))
    print(f'task {task_id} started for host {host_id}')

    # The PC boots, takes the task and reports progress; the page polls about once a second.
    key = task_key(base, token, MAC_SHOWN, host_id, task_id, store_path)
    total = 32 * 2**30
    post_progress(base, key, state='in_progress', percent=42, bytes_done=int(total * .42),
                  bytes_total=total, rate_Bps=118 * 2**20, message='writing partition 2')
    bar_css = f'#tasks-body tr[data-id="{task_id}"] .progress'
    wait(d, 'the progress bar at 42%', lambda d: d.find_element(
        By.CSS_SELECTOR, bar_css).get_attribute('aria-valuenow') == '42')
    text_in(d, f'#tasks-body tr[data-id="{task_id}"]', 'writing partition 2')
    text_in(d, f'#tasks-body tr[data-id="{task_id}"]', '118.0 MiB/s')
    text_in(d, f'#tasks-body tr[data-id="{task_id}"] .progress', '42%')
    # What is drawn, not just the attribute: the fill covers 42% of the bar once its
    # short transition has run.
    drawn = f"""const b = document.querySelector('{bar_css}');
        return b.querySelector('.fill').getBoundingClientRect().width / b.getBoundingClientRect().width;"""
    wait(d, 'the bar drawn 42% full', lambda d: abs(d.execute_script(drawn) - 0.42) < 0.01)

    os.makedirs(artifacts, exist_ok=True)
    shot = os.path.abspath(os.path.join(artifacts, 'console.png'))
    if not d.save_screenshot(shot):
        fail('Chromium took no screenshot')
    w, h, n = check_png(shot)
    print(f'screenshot: {shot} ({w}x{h}, {n} bytes)')

    # The PC finishes: the task leaves the running list for the history, complete.
    post_progress(base, key, state='complete', percent=100, bytes_done=total,
                  bytes_total=total, rate_Bps=0, message='image written and verified')
    text_in(d, f'#history-body tr[data-id="{task_id}"]', 'complete')
    wait(d, 'the task to leave the running list', lambda d: not d.find_elements(
        By.CSS_SELECTOR, f'#tasks-body tr[data-id="{task_id}"]'))

    # A token the server no longer knows sends the page back to the login form.
    d.execute_script("sessionStorage.setItem('shoal.token', 'not-a-token')")
    d.get(base + '/ui/#/hosts')
    visible(d, '#login-form')
    print('a stale token brings back the login form')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shoald', help='the shoald binary to start')
    ap.add_argument('--web', help='the console files shoald serves at /ui/')
    ap.add_argument('--url', help='use a shoald already running here instead')
    ap.add_argument('--user', default='admin')
    ap.add_argument('--password', default='console-test-pw')
    ap.add_argument('--artifacts', default='artifacts', help='where the screenshot goes')
    args = ap.parse_args()

    if not CHROMIUM or not os.path.exists(DRIVER):
        print('skip: chromium and chromium-driver are not installed (tools/setup installs them)')
        return SKIP
    if not args.url and not (args.shoald and args.web):
        ap.error('give --shoald and --web, or --url')

    os.makedirs(args.artifacts, exist_ok=True)
    stale = os.path.join(args.artifacts, 'console-failure.png')
    if os.path.exists(stale):
        os.remove(stale)  # from an earlier failed run: it must not pass for this one's
    workdir = tempfile.mkdtemp(prefix='shoal-console-')
    server = None
    d = None
    try:
        if args.url:
            base = args.url.rstrip('/')
        else:
            server = shoald_process(os.path.abspath(args.shoald), os.path.abspath(args.web), workdir,
                                    args.password)
            base = server.base
        d = browser(workdir)
        run(d, base, args.user, args.password, args.artifacts,
            server.store_path if server else None, workdir)
        print('console test: ok')
        return 0
    except Exception as e:  # an assertion, or Selenium or shoald giving out: all are failures
        print(f'FAIL: {type(e).__name__}: {e}', file=sys.stderr)
        if d is not None:
            try:
                shot = os.path.abspath(os.path.join(args.artifacts, 'console-failure.png'))
                os.makedirs(args.artifacts, exist_ok=True)
                d.save_screenshot(shot)
                print(f'failure screenshot: {shot}', file=sys.stderr)
            except Exception:
                pass
        if server is not None:
            print(f'shoald log (last lines):\n{server.tail()}', file=sys.stderr)
        return 1
    finally:
        if d is not None:
            d.quit()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())

<?php
// A server-rendered customers app for PHP's built-in server (`php -S`),
// written the way legacy PHP apps are: the state of a customer is its edit
// page's form, a change is an urlencoded or multipart post answered 302, a
// session login (users alice/wonder and bob/builder), a CSRF token in every
// form, `_method=DELETE` for deletes, names trimmed and e-mails lower-cased
// as they are saved, an API key shown read-only, the time of rendering in
// a hidden field. `/customers/{id}/card/` shows a customer without a form,
// `/customers/{id}.xml` as XML. Rows live in the JSON file APP_DB names, sessions
// beside it. The integration tests put auditgate in front of it.

$db = getenv('APP_DB');
ini_set('session.save_path', dirname($db));
session_start();
$rows = file_exists($db) ? json_decode(file_get_contents($db), true) : [];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$method = $_SERVER['REQUEST_METHOD'];
if ($method === 'POST' && isset($_POST['_method'])) {
    $method = strtoupper($_POST['_method']);
}
if (!isset($_SESSION['token'])) {
    $_SESSION['token'] = bin2hex(random_bytes(16));
}
$token = $_SESSION['token'];
$plans = ['basic' => 'Basic', 'pro' => 'Professional', 'team' => 'Team'];
$tags = ['vip' => 'VIP', 'late' => 'Pays late', 'eu' => 'EU'];

function h($s) {
    return htmlspecialchars((string) $s, ENT_QUOTES);
}

function go($to) {
    header("Location: $to", true, 302);
    exit;
}

function save($db, $rows) {
    file_put_contents($db, json_encode($rows), LOCK_EX);
}

function page($title, $body) {
    header('Content-Type: text/html; charset=utf-8');
    echo "<!DOCTYPE html>\n<html><head><title>" . h($title) . "</title></head><body>\n";
    echo "<form method=\"get\" action=\"/customers/\"><input name=\"q\" value=\"\"><button>Search</button></form>\n";
    echo "<h1>" . h($title) . "</h1>\n$body\n</body></html>\n";
    exit;
}

function options($all, $chosen) {
    $out = '';
    foreach ($all as $value => $label) {
        $on = in_array($value, (array) $chosen, true) ? ' selected' : '';
        $out .= "<option value=\"" . h($value) . "\"$on>" . h($label) . "</option>";
    }
    return $out;
}

if ($path === '/whoami') {
    header('Content-Type: application/json');
    echo json_encode(['username' => $_SESSION['user'] ?? null]);
    exit;
}

if ($path === '/login/') {
    if ($method === 'POST') {
        $users = ['alice' => 'wonder', 'bob' => 'builder'];
        $name = $_POST['username'] ?? '';
        if (($users[$name] ?? null) !== ($_POST['password'] ?? '') || $name === '') {
            http_response_code(401);
            page('Sign in', '<p>Wrong name or password.</p>');
        }
        session_regenerate_id(true);
        $_SESSION['user'] = $name;
        go('/customers/');
    }
    page('Sign in', "<form method=\"post\" action=\"/login/\"><input name=\"username\">"
        . "<input type=\"password\" name=\"password\"><button>Sign in</button></form>");
}

if (!isset($_SESSION['user'])) {
    go('/login/');
}
if ($method !== 'GET' && !hash_equals($token, $_POST['_token'] ?? '')) {
    http_response_code(403);
    page('Forbidden', '<p>The form has expired.</p>');
}

if ($path === '/customers/') {
    $list = '';
    foreach ($rows as $id => $row) {
        $list .= "<li><a href=\"/customers/$id/edit/\">" . h($row['name']) . "</a></li>";
    }
    page('Customers', "<ul>$list</ul><a href=\"/customers/new/\">New customer</a>");
}

/** The row a form posted, normalised as the app saves it. */
function posted($row) {
    $row['name'] = trim($_POST['name'] ?? $row['name'] ?? '');
    $row['email'] = strtolower(trim($_POST['email'] ?? $row['email'] ?? ''));
    $row['plan'] = $_POST['plan'] ?? $row['plan'] ?? 'basic';
    $row['active'] = isset($_POST['active']);
    $row['tags'] = array_values((array) ($_POST['tags'] ?? []));
    $row['notes'] = str_replace("\r\n", "\n", $_POST['notes'] ?? $row['notes'] ?? '');
    if (($_POST['password'] ?? '') !== '') {
        $row['password_hash'] = password_hash($_POST['password'], PASSWORD_DEFAULT);
    }
    if (isset($_FILES['avatar']) && $_FILES['avatar']['error'] === UPLOAD_ERR_OK) {
        $row['avatar_file'] = $_FILES['avatar']['name'] . ' (' . $_FILES['avatar']['size'] . ' bytes)';
    }
    return $row;
}

if ($path === '/customers/new/') {
    if ($method === 'POST') {
        $id = $rows ? max(array_keys($rows)) + 1 : 1;
        $rows[$id] = array_merge(posted(['id' => $id]), ['active' => true, 'api_key' => bin2hex(random_bytes(8))]);
        save($db, $rows);
        go("/customers/$id/edit/");
    }
    page('New customer', "<form method=\"post\" action=\"/customers/new/\">"
        . "<input type=\"hidden\" name=\"_token\" value=\"$token\">"
        . "<input name=\"name\"><input type=\"email\" name=\"email\">"
        . "<select name=\"plan\">" . options($plans, 'basic') . "</select><button>Create</button></form>");
}

if (!preg_match('#^/customers/(\d+)(/edit/|/card/|\.xml)$#', $path, $m) || !isset($rows[(int) $m[1]])) {
    http_response_code(404);
    page('Not found', '<p>No such customer.</p>');
}
$id = (int) $m[1];
$row = $rows[$id];
if ($m[2] === '/card/') {
    // The customer as a page without a form.
    page('Card', '<h2 class="name">' . h($row['name']) . '</h2><a class="email" href="mailto:' . h($row['email'])
        . '">write</a><ul>' . implode('', array_map(fn($t) => '<li class="tag">' . h($t) . '</li>', $row['tags'])) . '</ul>');
}
if ($m[2] === '.xml') {
    header('Content-Type: application/xml; charset=utf-8');
    $tags = implode('', array_map(fn($t) => '<tag>' . h($t) . '</tag>', $row['tags']));
    echo "<?xml version=\"1.0\"?>\n<customer id=\"$id\"><name>" . h($row['name']) . '</name><email>' . h($row['email'])
        . "</email><plan>{$row['plan']}</plan><tags>$tags</tags></customer>";
    exit;
}
if ($method === 'DELETE') {
    unset($rows[$id]);
    save($db, $rows);
    go('/customers/');
}
if ($method === 'POST') {
    $rows[$id] = posted($row);
    save($db, $rows);
    go("/customers/$id/edit/");
}
$checked = $row['active'] ? ' checked' : '';
[$h, $options] = ['h', 'options'];
page("Customer " . $row['name'], <<<HTML
<form method="post" action="/customers/$id/edit/" enctype="multipart/form-data">
  <input type="hidden" name="_token" value="$token">
  <input type="hidden" name="id" value="$id" disabled>
  <label>Name <input type="text" name="name" value="{$h($row['name'])}"></label>
  <label>E-mail <input type="email" name="email" value="{$h($row['email'])}"></label>
  <label><input type="checkbox" name="active" value="1"$checked> Active</label>
  <select name="plan">{$options($plans, $row['plan'])}</select>
  <select name="tags[]" multiple>{$options($tags, $row['tags'] ?? [])}</select>
  <textarea name="notes">
{$h($row['notes'] ?? '')}</textarea>
  <label>New password <input type="password" name="password" value=""></label>
  <input type="file" name="avatar">
  <input type="text" name="avatar_file" value="{$h($row['avatar_file'] ?? '')}" readonly>
  <input type="text" name="customer[api_key]" value="{$h($row['api_key'])}" readonly>
  <input type="hidden" name="rendered_at" value="{$h(microtime())}">
  <button type="submit" name="save" value="1">Save</button>
</form>
<form method="post" action="/customers/$id/edit/">
  <input type="hidden" name="_token" value="$token">
  <input type="hidden" name="_method" value="DELETE">
  <button>Delete</button>
</form>
HTML);

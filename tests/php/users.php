<?php
// A small JSON users API for PHP's built-in server (`php -S`), written the
// way many legacy PHP apps are: the id is read with (int), so `1.json`,
// `1abc` and `01` all mean user 1. Its rows live in the JSON file
// APP_DB names. The integration tests put auditgate in front of it.

$db = getenv('APP_DB');
$rows = file_exists($db) ? json_decode(file_get_contents($db), true) : [];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$method = $_SERVER['REQUEST_METHOD'];

function answer($status, $value) {
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($value);
    exit;
}

function save($db, $rows) {
    file_put_contents($db, json_encode($rows), LOCK_EX);
}

if (!preg_match('#^/api/v1/users/?([^/]*)/?$#', $path, $m)) {
    answer(404, ['error' => 'not found']);
}
$body = json_decode(file_get_contents('php://input'), true);
if ($m[1] === '') {
    if ($method !== 'POST') {
        answer(200, array_values($rows));
    }
    $id = count($rows) + 1;
    $rows[$id] = array_merge(is_array($body) ? $body : [], ['id' => $id]);
    save($db, $rows);
    header("Location: /api/v1/users/$id");
    answer(201, $rows[$id]);
}
$id = (int) $m[1];
if (!isset($rows[$id])) {
    answer(404, ['error' => 'no such user']);
}
switch ($method) {
    case 'GET':
        answer(200, $rows[$id]);
    case 'PATCH':
    case 'PUT':
        $rows[$id] = array_merge($rows[$id], is_array($body) ? $body : [], ['id' => $id]);
        save($db, $rows);
        answer(200, $rows[$id]);
    case 'DELETE':
        unset($rows[$id]);
        save($db, $rows);
        http_response_code(204);
        exit;
}
answer(405, ['error' => 'method not allowed']);

//! The integration tests: auditgate between real clients and a real upstream
//! process, all on 127.0.0.1 with ports chosen by the OS.

mod answers;
mod audit;
mod binary;
mod browsers;
mod configurations;
mod console;
mod docs;
mod durability;
mod erasure;
mod fastapi;
mod fuzz;
mod hardening;
mod helpers;
mod identity;
mod json_server;
mod lane;
mod layers;
mod limits;
mod live;
mod openapi;
mod pages;
mod php;
mod postgres;
mod query;
mod search;
mod sinks;
mod store;
mod tls;
mod transparency;
mod webdriver;
mod websocket;

//! An instrumented web service: axum on tokio, one `request` event per HTTP request (id from the
//! `x-request-id` header when given), a `request.db` sub-event per SQLite query and a sampled
//! `request.cache` sub-event per cache lookup.
//!
//! Run: `cargo run --release -p ziggy-examples --bin web -- 127.0.0.1:8080 127.0.0.1:3514`
//! (listen address, ziggyd collect address); `bash examples/load.sh` runs the whole scene.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};

ziggy::channels! {
    request { db, cache },
}

struct AppState {
    db: Mutex<rusqlite::Connection>,
    cache: Mutex<HashMap<u32, String>>,
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= ziggy::MAX_ID_LEN)
        .map_or_else(ziggy::new_id, str::to_owned)
}

#[ziggy::context("request", id = request_id(&headers))]
#[ziggy::timeit("request_time")]
async fn get_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(user_id): Path<u32>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    ziggy::set("path", format!("/users/{user_id}"));
    ziggy::set("method", "GET");
    let name = match cache_get(&state, user_id) {
        Some(name) => name,
        None => {
            let name = query_user(&state, user_id).map_err(|e| {
                // `(StatusCode, String)` is not `Display`, so the macro cannot record it itself.
                ziggy::set("response.status", 404);
                ziggy::set("error", &e);
                (StatusCode::NOT_FOUND, e)
            })?;
            state.cache.lock().unwrap().insert(user_id, name.clone());
            name
        }
    };
    ziggy::set("response.status", 200);
    Ok(Json(serde_json::json!({ "id": user_id, "name": name })))
}

#[ziggy::context("request.cache", sample = ("request", 0.1))]
fn cache_get(state: &AppState, user_id: u32) -> Option<String> {
    let hit = state.cache.lock().unwrap().get(&user_id).cloned();
    ziggy::set("hit", hit.is_some());
    hit
}

#[ziggy::context("request.db")]
#[ziggy::timeit("query_time")]
fn query_user(state: &AppState, user_id: u32) -> Result<String, String> {
    let sql = "SELECT name FROM users WHERE id = ?1";
    ziggy::set("sql", sql);
    let db = state.db.lock().unwrap();
    db.query_row(sql, [user_id], |row| row.get::<_, String>(0))
        .map_err(|e| format!("user {user_id}: {e}"))
}

fn seeded_db() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().expect("SQLite in memory");
    db.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
        .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for id in 1..=2_000u32 {
        tx.execute(
            "INSERT INTO users (id, name) VALUES (?1, ?2)",
            rusqlite::params![id, format!("user{id}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    db
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.get(1).map_or("127.0.0.1:8080", String::as_str);
    let ziggyd = args.get(2).map_or("127.0.0.1:3514", String::as_str);
    ziggy::configure(ziggyd).expect("configuring ziggy");
    let state = Arc::new(AppState {
        db: Mutex::new(seeded_db()),
        cache: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("binding the listen address");
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
    ziggy::shutdown();
}

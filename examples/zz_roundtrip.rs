// Throwaway: CPU per sqlx SQLite round trip.
use std::str::FromStr;
fn cpu() -> f64 {
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    (r.ru_utime.tv_sec as f64 + r.ru_utime.tv_usec as f64 / 1e6)
        + (r.ru_stime.tv_sec as f64 + r.ru_stime.tv_usec as f64 / 1e6)
}
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite:///tmp/sr/rt/t.db").unwrap().create_if_missing(true);
    let mut c = sqlx::ConnectOptions::connect(&o).await.unwrap();
    for round in 0..3 {
        let n = 20000;
        let (t, w) = (cpu(), std::time::Instant::now());
        for _ in 0..n {
            sqlx::query("SELECT 1").execute(&mut c).await.unwrap();
        }
        println!(
            "round {round}: {:.2} us CPU, {:.2} us wall per SELECT 1",
            (cpu() - t) / n as f64 * 1e6,
            w.elapsed().as_secs_f64() / n as f64 * 1e6
        );
        let (t, w) = (cpu(), std::time::Instant::now());
        for _ in 0..n / 10 {
            sqlx::query(
                "SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1; SELECT 1",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        println!(
            "round {round}: {:.2} us CPU, {:.2} us wall per SELECT 1 ten in one",
            (cpu() - t) / n as f64 * 1e6,
            w.elapsed().as_secs_f64() / n as f64 * 1e6
        );
    }
}

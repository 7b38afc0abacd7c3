//! A panic inside `DocHandle::change` does not poison the repo: the call
//! returns an error, the document reloads from storage, and the repo keeps
//! editing, flushing and reopening.

use serde_json::json;
use synkro::Repo;
use synkro::automerge::{ROOT, transaction::Transactable};

#[tokio::test]
async fn a_panic_in_a_change_is_an_error_and_the_repo_goes_on() -> anyhow::Result<()> {
    std::panic::set_hook(Box::new(|_| {}));
    let home = tempfile::tempdir()?;
    let id = {
        let repo = Repo::open(home.path()).await?;
        let doc = repo.create().await?;
        let id = doc.id();
        doc.set("title", &json!("before"))?;
        doc.flush().await?;
        let err = doc
            .change(|d| -> Result<(), _> {
                d.put(ROOT, "title", "half")?;
                panic!("a bug in the closure")
            })
            .unwrap_err();
        assert!(err.to_string().contains("reloaded from storage"), "{err}");
        assert_eq!(doc.get("title")?, Some(json!("before")));
        doc.set("title", &json!("after"))?;
        doc.flush().await?;
        drop(doc);
        drop(repo);
        id
    };
    let _ = std::panic::take_hook();
    let repo = Repo::open(home.path()).await?;
    assert_eq!(repo.find(&id).await?.get("title")?, Some(json!("after")));
    Ok(())
}

//! The hub's reports on itself: `hub.status`, `/health` (and `hub.health`) with the
//! database's and the broker's state, and the `hub.stats` figures.

use super::{PRODUCT, VERSION};
use crate::app::contexts::Reports;
use crate::protocol::PROTOCOL_VERSION;
use crate::protocol::hub::{
    BrokerHealth, BrokerKind, BrokerState, DatabaseHealth, Disk, DurabilityHealth, Health,
    HealthStatus, HubStatus, Memory, Stats,
};
use crate::storage::postgres::Database;
use crate::storage::sqlite::Durability;

impl Reports {
    /// `/health` `broker`.
    pub(crate) fn broker_health(&self) -> BrokerHealth {
        let metrics = &self.metrics.broker;
        match &self.nats {
            Some(nats) => BrokerHealth {
                kind: BrokerKind::Nats,
                state: nats.state(),
                subscriptions: metrics.subscriptions.get(),
                reconnects: metrics.reconnects.get(),
            },
            None => BrokerHealth {
                kind: BrokerKind::InProcess,
                state: BrokerState::Connected,
                subscriptions: 0,
                reconnects: 0,
            },
        }
    }

    /// Where client tokens and pairings live and whether it answers: the local SQLite
    /// database is always reachable; the shared PostgreSQL database as last seen.
    pub(crate) fn database_health(&self) -> DatabaseHealth {
        self.access
            .database()
            .map_or(DatabaseHealth::SQLITE, Database::health)
    }

    /// `hub.status`: what the hub is and how busy it is.
    pub(crate) fn status(&self) -> HubStatus {
        HubStatus {
            product: PRODUCT,
            version: VERSION,
            protocol: PROTOCOL_VERSION,
            instance_id: self.instance_id.clone(),
            mode: self.config.config.mode().as_str(),
            port: self.notices.port(),
            uptime_s: self.started.elapsed().as_secs(),
            projects: self.projects.count(),
            connections: self.clients.count(),
            running_agents: self.runner.running(),
            secret_store: self.secret_store,
            agent_cli: self.runner.cli().report(),
            agent_clis: self.runner.clis().report(),
            data_dir: Some(self.config.data_dir.clone()),
        }
    }

    /// `GET /health`: status, resources, counts, agent CLI availability and the broker;
    /// `status` is `unhealthy` while the broker between instances is lost.
    pub(crate) fn health(&self) -> Health {
        let sample = self.monitor.latest();
        let database = self.database_health();
        let broker = self.broker_health();
        let status = if database.healthy() && broker.healthy() {
            HealthStatus::Ok
        } else {
            HealthStatus::Unhealthy
        };
        Health {
            status,
            product: PRODUCT,
            version: VERSION,
            uptime_s: self.started.elapsed().as_secs(),
            cpu_percent: sample.cpu_percent,
            memory: Memory {
                used_bytes: sample.memory_used_bytes,
                total_bytes: sample.memory_total_bytes,
                process_rss_bytes: sample.process_rss_bytes,
            },
            disk: Disk {
                available_bytes: sample.disk_available_bytes,
                total_bytes: sample.disk_total_bytes,
            },
            connections: self.clients.count(),
            projects: self.projects.count(),
            running_agents: self.runner.running(),
            agent_cli: self.runner.cli().report(),
            agent_clis: self.runner.clis().report(),
            secret_store: self.secret_store,
            database,
            durability: self.durability_health(),
            broker,
        }
    }

    /// `/health` `durability`: what the store's acknowledged writes survive.
    pub(crate) fn durability_health(&self) -> DurabilityHealth {
        let (survives, synchronous) = match self.durability {
            Durability::PowerCut => ("power_cut", "full"),
            Durability::ProcessCrash => ("process_crash", "normal"),
        };
        DurabilityHealth {
            survives,
            synchronous,
            lose_acknowledged_writes_on_power_cut: self.durability == Durability::ProcessCrash,
        }
    }

    /// The `hub.stats` params.
    pub(crate) fn stats(&self) -> Stats {
        let sample = self.monitor.latest();
        Stats {
            uptime_s: self.started.elapsed().as_secs(),
            connections: self.clients.count(),
            projects: self.projects.count(),
            running_agents: self.runner.running(),
            cpu_percent: sample.cpu_percent,
            memory_used_bytes: sample.memory_used_bytes,
            memory_total_bytes: sample.memory_total_bytes,
            process_rss_bytes: sample.process_rss_bytes,
        }
    }
}

// Parameters for `azd up` (azd reads main.bicepparam) and for
// `az deployment group create -g <rg> --parameters infra/bicep/main.bicepparam`.
// Values come from environment variables where azd sets one; every parameter is described by its
// @description in main.bicep. Secure defaults: change a value here, or export the variable.
using './main.bicep'

// azd environment name; part of every resource name.
param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'hubcap')
// Region; empty deploys into the resource group's region.
param location = readEnvironmentVariable('AZURE_LOCATION', '')

// Event Hubs: tier, throughput units, auto-inflate ceiling, partitions, retention.
param eventHubSku = 'Standard'
param eventHubCapacity = 1
param eventHubMaxThroughputUnits = 0
param eventHubPartitionCount = 4
param eventHubRetentionHours = 72

// Function App (Flex Consumption): instance memory, scale-out ceiling, HTTP concurrency per instance,
// FunctionAppLogs to Log Analytics (off: Application Insights has them), platform CORS (keep empty).
param functionInstanceMemoryMB = 2048
param functionMaximumInstanceCount = 40
param functionHttpPerInstanceConcurrency = 16
param sendFunctionAppLogs = false
param corsAllowedOrigins = []

// Lake: replication, expiry of rejected/, failed/ and (0: never) events/, soft delete.
param lakeSku = 'Standard_ZRS'
param rejectedRetentionDays = 30
param failedRetentionDays = 90
param eventRetentionDays = 0
param lakeSoftDeleteDays = 2

// Monitoring.
param logRetentionDays = 30

// App registry JSON for Key Vault; empty keeps the secret that is there (see docs/deploy.md).
param appsJson = readEnvironmentVariable('HUBCAP_APPS_JSON', '')

// Operator who gets Key Vault Secrets Officer and Storage Blob Data Reader (azd sets AZURE_PRINCIPAL_ID;
// use operatorPrincipalType 'ServicePrincipal' when a pipeline deploys).
param operatorPrincipalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')
param operatorPrincipalType = 'User'

// Collector and capture tuning: the HUBCAP_* app settings of the same meaning.
param geoDbPath = ''
param trustedHops = 1
param trustedProxies = ''
param maxBodyBytes = 1048576
param sessionTimeoutSeconds = 1800
param dedupWindow = 100000
param avroCodec = 'snappy'
param logLevel = 'INFO'

// Branded links: the custom domain whose root serves /<slug> (see docs/deploy.md); empty binds none.
param linkDomain = ''

// The inspector: test apps whose events the firehose app keeps in memory (HUBCAP_INSPECT_APPS); empty is off.
param inspectApps = ''

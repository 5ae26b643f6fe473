// hubcap in one resource group: tracker -> Function App (Flex Consumption) -> Event Hubs ->
// capture -> ADLS Gen2. Deploy with `azd up` or
// `az deployment group create -g <rg> --parameters infra/bicep/main.bicepparam`.
// Managed identity everywhere: no connection string, account key or SAS is created or stored.
targetScope = 'resourceGroup'

@description('Environment name (the azd environment, e.g. prod); part of every resource name and the azd-env-name tag.')
@minLength(1)
@maxLength(20)
param environmentName string

@description('Azure region of every resource; empty means the region of the resource group.')
param location string = ''

@description('Event Hubs tier. Standard suits up to tens of MB/s; Premium isolates capacity.')
@allowed([
  'Standard'
  'Premium'
])
param eventHubSku string = 'Standard'

@description('Event Hubs throughput units (Standard: 1 TU = 1 MB/s or 1000 events/s in) or processing units (Premium).')
@minValue(1)
@maxValue(40)
param eventHubCapacity int = 1

@description('Auto-inflate ceiling in throughput units on Standard; 0 (or at most eventHubCapacity) keeps the capacity fixed.')
@minValue(0)
@maxValue(40)
param eventHubMaxThroughputUnits int = 0

@description('Partitions of the hub `clicks`: the most capture instances that run in parallel. Fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Hours events stay readable in the hub, i.e. how long capture may lag or be down without losing data.')
@minValue(1)
@maxValue(168)
param eventHubRetentionHours int = 72

@description('Memory per Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Most Function App instances at once, across the collector and capture; the upper bound of the compute bill.')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Concurrent HTTP requests per Function App instance before another is added (the collector is async).')
@minValue(1)
@maxValue(1000)
param functionHttpPerInstanceConcurrency int = 16

@description('Send FunctionAppLogs to Log Analytics as well. Application Insights already has these logs; this doubles their ingestion cost.')
param sendFunctionAppLogs bool = false

@description('Origins the platform itself answers CORS for. Keep empty: the collector answers preflights with the allowed origins of each registered app.')
param corsAllowedOrigins array = []

@description('Replication of the lake account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param lakeSku string = 'Standard_ZRS'

@description('Days after which events under rejected/ (schema-invalid) are deleted.')
@minValue(1)
param rejectedRetentionDays int = 30

@description('Days after which events under failed/ (enrichment failures, kept for replay) are deleted.')
@minValue(1)
param failedRetentionDays int = 90

@description('Days after which events under events/ (and the firehose\'s cut records for them) are deleted; 0 keeps them for good.')
@minValue(0)
param eventRetentionDays int = 0

@description('Days deleted lake blobs stay recoverable (the salts live in their own account, without soft delete).')
@minValue(1)
@maxValue(365)
param lakeSoftDeleteDays int = 2

@description('Days Log Analytics keeps logs and metrics (the first 31 days cost nothing extra).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('App registry JSON ({"apps": [...]}, see devstack/apps.dev.json) to store in Key Vault. Empty leaves the secret as it is.')
@secure()
param appsJson string = ''

@description('Object ID of the operator who registers apps and reads the lake (azd sets AZURE_PRINCIPAL_ID); empty assigns no operator roles.')
param operatorPrincipalId string = ''

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Path of a MaxMind-format city .mmdb the Function App can read (e.g. shipped in the package); empty turns geo enrichment off.')
param geoDbPath string = ''

@description('Proxy hops in front of the app whose X-Forwarded-For entries are trusted (HUBCAP_TRUSTED_HOPS).')
@minValue(0)
param trustedHops int = 1

@description('Comma-separated proxy addresses or CIDRs trusted to set X-Forwarded-For (HUBCAP_TRUSTED_PROXIES).')
param trustedProxies string = ''

@description('Largest accepted request body in bytes, compressed and after gzip (HUBCAP_MAX_BODY_BYTES).')
@minValue(1024)
param maxBodyBytes int = 1048576

@description('Seconds of inactivity that end a session (HUBCAP_SESSION_TIMEOUT_S).')
@minValue(1)
param sessionTimeoutSeconds int = 1800

@description('(app_id, event_id) pairs remembered per partition to flag duplicates (HUBCAP_DEDUP_WINDOW).')
@minValue(0)
param dedupWindow int = 100000

@description('Avro block codec of the lake files (HUBCAP_AVRO_CODEC).')
@allowed([
  'null'
  'deflate'
  'snappy'
  'zstandard'
])
param avroCodec string = 'snappy'

@description('Branded link domain bound to the Function App, served at its root (https://<domain>/<slug>); empty binds none.')
param linkDomain string = ''

@description('Test apps whose events the inspector (firehose app) serves, comma-separated (HUBCAP_INSPECT_APPS); empty keeps it off.')
param inspectApps string = ''

@description('Log level of the hubcap workers (HUBCAP_LOG_LEVEL).')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string = 'INFO'

var region = empty(location) ? resourceGroup().location : location
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'hubcap'
}
var names = {
  identity: 'id-hubcap-${environmentName}'
  workspace: 'log-hubcap-${environmentName}'
  appInsights: 'appi-hubcap-${environmentName}'
  hostStorage: 'stfn${token}'
  lake: 'stlake${token}'
  salts: 'stsalt${token}'
  eventHubs: 'evhns-hubcap-${environmentName}-${token}'
  keyVault: 'kv-hubcap-${take(token, 11)}'
  plan: 'plan-hubcap-${environmentName}'
  functionApp: 'func-hubcap-${environmentName}-${token}'
  firehosePlan: 'plan-hubcap-fh-${environmentName}'
  firehoseApp: 'func-hubcap-fh-${environmentName}-${token}'
}
var hubName = 'clicks'
var captureConsumerGroup = 'capture'
var firehoseConsumerGroup = 'firehose'
var inspectConsumerGroup = 'inspect'
var lakeFilesystemName = 'lake'
var saltContainerName = 'salts'
var stateTableName = 'hubcapstate'
var appsSecretName = 'hubcap-apps'
var deploymentContainerName = 'app-package'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: region
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: region
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    retentionDays: logRetentionDays
  }
}

module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  params: {
    location: region
    tags: tags
    name: names.hostStorage
    deploymentContainerName: deploymentContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module lake 'modules/lake.bicep' = {
  name: 'lake'
  params: {
    location: region
    tags: tags
    name: names.lake
    skuName: lakeSku
    lakeFilesystemName: lakeFilesystemName
    stateTableName: stateTableName
    rejectedRetentionDays: rejectedRetentionDays
    failedRetentionDays: failedRetentionDays
    eventRetentionDays: eventRetentionDays
    // The live firehose reads a cut record again when the hub redelivers its messages: kept past the
    // hub's retention, whatever eventRetentionDays says.
    cutRetentionDays: eventRetentionDays == 0 ? 0 : max(eventRetentionDays, eventHubRetentionHours / 24 + 2)
    softDeleteDays: lakeSoftDeleteDays
    workspaceId: monitoring.outputs.workspaceId
  }
}

module salts 'modules/salts.bicep' = {
  name: 'salts'
  params: {
    location: region
    tags: tags
    name: names.salts
    saltContainerName: saltContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'event-hubs'
  params: {
    location: region
    tags: tags
    name: names.eventHubs
    skuName: eventHubSku
    capacity: eventHubCapacity
    maximumThroughputUnits: eventHubMaxThroughputUnits
    hubName: hubName
    partitionCount: eventHubPartitionCount
    retentionHours: eventHubRetentionHours
    // capture: the lake writer; firehose: the second Function App, delivering to customers;
    // metrics: the live counters, in the second Function App too (firehose_app.py).
    consumerGroups: [
      captureConsumerGroup
      firehoseConsumerGroup
      // inspect: the inspector's in-memory window, in the firehose's app (off unless inspectApps).
      inspectConsumerGroup
      'metrics'
    ]
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  params: {
    location: region
    tags: tags
    name: names.keyVault
    appsSecretName: appsSecretName
    appsJson: appsJson
    softDeleteDays: 90
    workspaceId: monitoring.outputs.workspaceId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'function-app'
  params: {
    location: region
    tags: tags
    name: names.functionApp
    planName: names.plan
    serviceName: 'api'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    hostStorageName: hostStorage.outputs.name
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: functionInstanceMemoryMB
    maximumInstanceCount: functionMaximumInstanceCount
    httpPerInstanceConcurrency: functionHttpPerInstanceConcurrency
    sendFunctionAppLogs: sendFunctionAppLogs
    corsAllowedOrigins: corsAllowedOrigins
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.hubName
    captureConsumerGroup: captureConsumerGroup
    firehoseConsumerGroup: firehoseConsumerGroup
    lakeBlobEndpoint: lake.outputs.blobEndpoint
    lakeFilesystemName: lakeFilesystemName
    saltBlobEndpoint: salts.outputs.blobEndpoint
    saltContainerName: saltContainerName
    stateTableName: stateTableName
    keyVaultName: keyVault.outputs.name
    appsSecretName: appsSecretName
    geoDbPath: geoDbPath
    trustedHops: trustedHops
    trustedProxies: trustedProxies
    maxBodyBytes: maxBodyBytes
    sessionTimeoutSeconds: sessionTimeoutSeconds
    dedupWindow: dedupWindow
    avroCodec: avroCodec
    logLevel: logLevel
    workspaceId: monitoring.outputs.workspaceId
    linkDomain: linkDomain
  }
}

// The firehose: the same package as a second app (firehose_app.py), same identity and settings.
module firehoseApp 'modules/functionapp.bicep' = {
  name: 'firehose-app'
  params: {
    location: region
    tags: tags
    name: names.firehoseApp
    planName: names.firehosePlan
    serviceName: 'firehose'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    hostStorageName: hostStorage.outputs.name
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: functionInstanceMemoryMB
    maximumInstanceCount: functionMaximumInstanceCount
    httpPerInstanceConcurrency: functionHttpPerInstanceConcurrency
    sendFunctionAppLogs: sendFunctionAppLogs
    corsAllowedOrigins: corsAllowedOrigins
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.hubName
    captureConsumerGroup: captureConsumerGroup
    firehoseConsumerGroup: firehoseConsumerGroup
    lakeBlobEndpoint: lake.outputs.blobEndpoint
    lakeFilesystemName: lakeFilesystemName
    saltBlobEndpoint: salts.outputs.blobEndpoint
    saltContainerName: saltContainerName
    stateTableName: stateTableName
    keyVaultName: keyVault.outputs.name
    appsSecretName: appsSecretName
    geoDbPath: geoDbPath
    trustedHops: trustedHops
    trustedProxies: trustedProxies
    maxBodyBytes: maxBodyBytes
    sessionTimeoutSeconds: sessionTimeoutSeconds
    dedupWindow: dedupWindow
    avroCodec: avroCodec
    logLevel: logLevel
    workspaceId: monitoring.outputs.workspaceId
    entryScript: 'firehose_app.py'
    inspectConsumerGroup: inspectConsumerGroup
    inspectApps: inspectApps
    // Small batches handed over quickly: the firehose's latency, without shrinking the lake's files.
    hostOverrides: {
      AzureFunctionsJobHost__extensions__eventHubs__maxEventBatchSize: '100'
      AzureFunctionsJobHost__extensions__eventHubs__minEventBatchSize: '1'
      AzureFunctionsJobHost__extensions__eventHubs__maxWaitTime: '00:00:00.200'
      AzureFunctionsJobHost__extensions__eventHubs__prefetchCount: '300'
    }
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.hubName
    hostStorageName: hostStorage.outputs.name
    lakeAccountName: lake.outputs.name
    lakeFilesystemName: lakeFilesystemName
    saltAccountName: salts.outputs.name
    saltContainerName: saltContainerName
    stateTableName: stateTableName
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
  }
}

// Outputs land in the azd environment (.azure/<env>/.env) and feed docs/deploy.md's commands.
output AZURE_LOCATION string = region
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_FIREHOSE_NAME string = firehoseApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output HUBCAP_COLLECT_URL string = 'https://${functionApp.outputs.defaultHostName}/api/collect'
output HUBCAP_IDENTITY_CLIENT_ID string = identity.properties.clientId
output EVENTHUB_FULLY_QUALIFIED_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output HUBCAP_LAKE_ACCOUNT_URL string = lake.outputs.blobEndpoint
output HUBCAP_LAKE_DFS_URL string = lake.outputs.dfsEndpoint
output KEY_VAULT_NAME string = keyVault.outputs.name
output HUBCAP_APPS_SECRET_NAME string = appsSecretName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceId

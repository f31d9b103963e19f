// The types of the TOSCA Simple Profile for Network Functions Virtualization (NFV) 1.0 (OASIS,
// tosca_definitions_version tosca_simple_profile_for_nfv_1_0_0), written here from the profile's
// text: the VNF, VDU, connection point (CP), virtual link (VL, E-Line, E-LAN, E-Tree) and
// forwarding path (FP) nodes, their capabilities and relationships, and the VNF forwarding graph
// group. A file of that version gets them on top of the normative types.
export const nfvProfileVersion = 'tosca_simple_profile_for_nfv_1_0_0';

export const nfvTypes = `
tosca_definitions_version: tosca_simple_yaml_1_0
capability_types:
  tosca.capabilities.nfv.VirtualLinkable: { derived_from: tosca.capabilities.network.Linkable }
  tosca.capabilities.nfv.VirtualBindable: { derived_from: tosca.capabilities.network.Bindable }
  tosca.capabilities.nfv.HA: { derived_from: tosca.capabilities.Root, valid_source_types: [ tosca.nodes.nfv.VDU ] }
  tosca.capabilities.nfv.HA.ActiveActive: { derived_from: tosca.capabilities.nfv.HA }
  tosca.capabilities.nfv.HA.ActivePassive: { derived_from: tosca.capabilities.nfv.HA }
  tosca.capabilities.nfv.Metric: { derived_from: tosca.capabilities.Root }
  tosca.capabilities.nfv.Forwarder: { derived_from: tosca.capabilities.Root }

relationship_types:
  tosca.relationships.nfv.VirtualLinksTo: { derived_from: tosca.relationships.network.LinksTo, valid_target_types: [ tosca.capabilities.nfv.VirtualLinkable ] }
  tosca.relationships.nfv.VirtualBindsTo: { derived_from: tosca.relationships.network.BindsTo, valid_target_types: [ tosca.capabilities.nfv.VirtualBindable ] }
  tosca.relationships.nfv.HA: { derived_from: tosca.relationships.Root, valid_target_types: [ tosca.capabilities.nfv.HA ] }
  tosca.relationships.nfv.Monitor: { derived_from: tosca.relationships.ConnectsTo, valid_target_types: [ tosca.capabilities.nfv.Metric ] }
  tosca.relationships.nfv.ForwardsTo: { derived_from: tosca.relationships.Root, valid_target_types: [ tosca.capabilities.nfv.Forwarder ] }

node_types:
  tosca.nodes.nfv.VNF:
    derived_from: tosca.nodes.Root
    properties:
      id: { type: string }
      vendor: { type: string }
      version: { type: version }
    requirements:
      - virtualLink: { capability: tosca.capabilities.nfv.VirtualLinkable, relationship: tosca.relationships.nfv.VirtualLinksTo, node: tosca.nodes.nfv.VL }
  tosca.nodes.nfv.VDU:
    derived_from: tosca.nodes.Compute
    capabilities:
      high_availability: { type: tosca.capabilities.nfv.HA }
      virtualbinding: { type: tosca.capabilities.nfv.VirtualBindable }
      monitoring_parameter: { type: tosca.capabilities.nfv.Metric }
    requirements:
      - high_availability: { capability: tosca.capabilities.nfv.HA, relationship: tosca.relationships.nfv.HA, node: tosca.nodes.nfv.VDU, occurrences: [ 0, 1 ] }
  tosca.nodes.nfv.CP:
    derived_from: tosca.nodes.network.Port
    properties:
      type: { type: string, required: false }
    attributes:
      address: { type: string }
    requirements:
      - virtualLink: { capability: tosca.capabilities.nfv.VirtualLinkable, relationship: tosca.relationships.nfv.VirtualLinksTo, node: tosca.nodes.nfv.VL }
      - virtualBinding: { capability: tosca.capabilities.nfv.VirtualBindable, relationship: tosca.relationships.nfv.VirtualBindsTo, node: tosca.nodes.nfv.VDU }
  tosca.nodes.nfv.VL:
    derived_from: tosca.nodes.network.Network
    properties:
      vendor: { type: string, required: true }
    capabilities:
      virtual_linkable: { type: tosca.capabilities.nfv.VirtualLinkable }
  tosca.nodes.nfv.VL.ELine:
    derived_from: tosca.nodes.nfv.VL
    capabilities:
      virtual_linkable: { type: tosca.capabilities.nfv.VirtualLinkable, occurrences: [ 1, 2 ] }
  tosca.nodes.nfv.VL.ELAN: { derived_from: tosca.nodes.nfv.VL }
  tosca.nodes.nfv.VL.ETree: { derived_from: tosca.nodes.nfv.VL }
  tosca.nodes.nfv.FP:
    derived_from: tosca.nodes.Root
    properties:
      policy: { type: string, required: false }
    requirements:
      - forwarder: { capability: tosca.capabilities.nfv.Forwarder, relationship: tosca.relationships.nfv.ForwardsTo }

group_types:
  tosca.groups.nfv.VNFFG:
    derived_from: tosca.groups.Root
    properties:
      vendor: { type: string, required: true }
      version: { type: string, required: true }
      number_of_endpoints: { type: integer, required: true }
      dependent_virtual_link: { type: list, entry_schema: { type: string }, required: true }
      connection_point: { type: list, entry_schema: { type: string }, required: true }
      constituent_vnfs: { type: list, entry_schema: { type: string }, required: true }
    members: [ tosca.nodes.nfv.FP ]
`;
